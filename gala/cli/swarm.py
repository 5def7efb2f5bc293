"""`gala swarm`: not built yet."""


def register(sub) -> None:
    p = sub.add_parser("swarm", help="(not built yet)")
    p.set_defaults(func=lambda args: (print("gala swarm: not built yet"), 2)[1])
