"""MLflow: the runs of a study and its trials, queries over them, every tag name (`tags`), the
parent run's summary, the UI's links, and rebuilding a logged network. The only package that
imports MLflow."""
