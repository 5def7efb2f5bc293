"""`gala plan`: not built yet."""


def register(sub) -> None:
    p = sub.add_parser("plan", help="(not built yet)")
    p.set_defaults(func=lambda args: (print("gala plan: not built yet"), 2)[1])
