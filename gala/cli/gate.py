"""`gala gate`: not built yet."""


def register(sub) -> None:
    p = sub.add_parser("gate", help="(not built yet)")
    p.set_defaults(func=lambda args: (print("gala gate: not built yet"), 2)[1])
