"""Locust user classes a scenario can name: the gala's (`gala.py`), a declarative one for any HTTP
system (`http.py`), their common base (`base.py`), and the pacing they share (`pacing.py`)."""
