"""The shared contract at the bottom of the layers: what every part reads and writes through.

It imports no other part of gala (and neither Locust, gevent nor aiohttp): errors and the one
exit-code table (`errors`), the one YAML reader (`yamlfile`), the results folder's models and
reader (`results`), histograms (`histogram`), atomic writes (`atomic`), the loopback rule
(`loopback`), the rule for which phase owns a moment (`phases`), and the speed reference's work,
whose units two parts measure and the plan compares (`speed_work`).
"""
