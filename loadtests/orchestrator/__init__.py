"""The code that runs in the `gala` process to orchestrate a run."""
