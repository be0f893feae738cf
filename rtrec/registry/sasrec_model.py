"""The code MLflow logs for the SASRec pyfunc ("models from code"): loading a version runs
this file instead of unpickling an object, so a runtime with another cloudpickle (the Flink
runtime pins apache-beam's) loads it the same way; the weights and vocabulary are artifacts."""

from mlflow.models import set_model

from rtrec.registry.recommender import SasRecRecommender

set_model(SasRecRecommender())
