"""Running model-written code: the sandbox, test harnesses, pass@k."""
