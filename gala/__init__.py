"""gala: rehearse the 2016 Spring Festival Gala red-envelope night and plan its capacity.

The package holds what the three parts share (the results-folder contract, the error type that
means "bad input") and the thin command-line layer; the parts themselves live in `loadtests`,
`capacity_model` and `k8s`.
"""

__version__ = "0.1.0"
