-- First start of the PostgreSQL container: MLflow's tracking store beside the prediction store.
CREATE DATABASE mlflow OWNER posture;
