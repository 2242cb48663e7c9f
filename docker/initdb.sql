-- MLflow's basic-auth keeps its users and permissions in a database of its own
CREATE DATABASE mlflow_auth OWNER mlflow;
