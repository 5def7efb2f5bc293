"""`gala target`: not built yet."""


def register(sub) -> None:
    p = sub.add_parser("target", help="(not built yet)")
    p.set_defaults(func=lambda args: (print("gala target: not built yet"), 2)[1])
