"""The seam the cell-search loop is written against: evaluators, executors, objectives, reports.

``Evaluator.evaluate(graph, seed) -> Result`` trains one candidate (CNN or RNN proxy);
an ``Executor`` runs candidates and yields results as they finish; an ``Objective`` turns a
result into the score the loop maximises; ``report`` writes the logs and plots.
"""
from api.search.evaluator import Evaluator, Result, Task
from api.search.executors import Executor, InProcessExecutor, evaluate_safely
from api.search.objectives import CNNObjective, Objective, RNNObjective

__all__ = ["Evaluator", "Result", "Task", "Executor", "InProcessExecutor", "evaluate_safely",
           "Objective", "CNNObjective", "RNNObjective"]
