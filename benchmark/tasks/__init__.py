"""Tasks: each task's predictions format (read, validate, write), training data and per-sample outcomes.

The interface every task implements is :class:`~facebench.tasks.base.Task`; each task lives in its own
module and is registered in :data:`facebench.registry.TASKS` by its module path. This package re-exports
the tasks and the types their hooks return, so ``from facebench.tasks import AGE_REGRESSION`` works.
"""

from facebench.tasks.age_regression import AGE_REGRESSION, AgeRegressionTask
from facebench.tasks.base import ExtraSplit, Task
from facebench.tasks.face_recognition import (
    Embeddings,
    FaceRecognitionTask,
    NpzMatrix,
    pair_view,
    read_npz_matrix,
)
from facebench.tasks.identification import AGE_GAP_EDGES, FACE_IDENTIFICATION, FaceIdentificationTask
from facebench.tasks.leave_one_out import FACE_IDENTIFICATION_LOO, FaceLeaveOneOutTask, LeaveOneOutScores
from facebench.tasks.retrieval import FACE_RETRIEVAL, FaceRetrievalTask
from facebench.tasks.verification import FACE_VERIFICATION, PAIR_GAP_EDGES, FaceVerificationTask

__all__ = [
    "AGE_GAP_EDGES",
    "AGE_REGRESSION",
    "FACE_IDENTIFICATION",
    "FACE_IDENTIFICATION_LOO",
    "FACE_RETRIEVAL",
    "FACE_VERIFICATION",
    "PAIR_GAP_EDGES",
    "AgeRegressionTask",
    "Embeddings",
    "ExtraSplit",
    "FaceIdentificationTask",
    "FaceLeaveOneOutTask",
    "FaceRecognitionTask",
    "FaceRetrievalTask",
    "FaceVerificationTask",
    "LeaveOneOutScores",
    "NpzMatrix",
    "Task",
    "pair_view",
    "read_npz_matrix",
]
