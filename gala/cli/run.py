"""`gala run`: not built yet."""


def register(sub) -> None:
    p = sub.add_parser("run", help="(not built yet)")
    p.set_defaults(func=lambda args: (print("gala run: not built yet"), 2)[1])
