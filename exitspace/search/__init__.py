"""Co-design search: design space, objectives, constraints, NSGA-II study, baselines."""
