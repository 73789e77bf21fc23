"""Every error stealml raises, in one tree.

::

    StealmlError
    ├── InvalidInputError (ValueError)        bad data handed to the library
    │   ├── FeatureCountError                 wrong number of features
    │   ├── NonFiniteInputError               NaN (where missing is not allowed) or infinity
    │   ├── UnknownCategoryError              a categorical value the space does not list
    │   └── SpaceDefinitionError              a FeatureSpace (or its JSON) that makes no sense
    ├── ConfigurationError (ValueError)       a bad option: budget of 0, unknown attack, ...
    ├── ModelFileError                        a file that cannot be loaded as a model
    │   └── UntrustedTypesError               the file holds types we do not trust by default
    ├── UnsupportedModelError                 the attack cannot handle this kind of target
    ├── OracleError                           the oracle failed to answer
    │   ├── OracleCapabilityError             the API does not reveal what the attack needs
    │   └── OracleUnavailableError            the target could not be reached
    ├── QueryBudgetExceeded                   a query would go past the ledger's budget
    │   └── KeyBlocked                        an extraction monitor flagged the client: no more
    ├── LedgerError                           the query log cannot be used (other target, corrupt)
    ├── DatasetError                          an unknown or unreadable data set
    └── GridError                             a grid's results store or cluster cannot be used

Foreign errors (onnxruntime, sqlite3, skops) are translated at the boundary with
``raise ... from exc`` so callers only ever need to catch :class:`StealmlError`.
"""

from __future__ import annotations


class StealmlError(Exception):
    """Base class of every error stealml raises on purpose."""


class InvalidInputError(StealmlError, ValueError):
    """Input data that stealml cannot use as given."""


class FeatureCountError(InvalidInputError):
    """An input has a different number of features than the space."""


class NonFiniteInputError(InvalidInputError):
    """An input holds NaN where missing values are not accepted, or an infinity."""


class UnknownCategoryError(InvalidInputError):
    """A categorical value that the feature space does not list."""


class SpaceDefinitionError(InvalidInputError):
    """A feature space definition that is inconsistent or malformed."""


class ConfigurationError(StealmlError, ValueError):
    """An option that makes no sense (a budget of 0, an unknown attack name, ...)."""


class ModelFileError(StealmlError):
    """A file that is not a model stealml can load."""


class UntrustedTypesError(ModelFileError):
    """A model file holding types outside the trusted set; pass ``trusted=True`` to load."""

    def __init__(self, path: str, types: list[str]) -> None:
        self.path = path
        self.types = list(types)
        super().__init__(
            f"{path} holds types that are not trusted by default: {', '.join(self.types)}; "
            "load it with --trusted only if you trust its source"
        )


class UnsupportedModelError(StealmlError):
    """The chosen attack does not apply to this kind of target."""


class OracleError(StealmlError):
    """The oracle could not answer."""


class OracleCapabilityError(OracleError):
    """The API does not reveal what the attack needs (e.g. probabilities)."""


class OracleUnavailableError(OracleError):
    """The target behind the oracle could not be reached or failed."""


class QueryBudgetExceeded(StealmlError):
    """A batch of queries would take the ledger past its budget.

    Nothing of the refused batch was paid for. ``remaining`` says how many queries
    the budget still allows, so an attack can spend them on a smaller batch.
    """

    def __init__(self, requested: int, remaining: int, budget: int) -> None:
        self.requested = requested
        self.remaining = remaining
        self.budget = budget
        super().__init__(
            f"a batch of {requested} new queries exceeds the budget of {budget} "
            f"({remaining} left)"
        )


class LedgerError(StealmlError):
    """The query log cannot be used (it belongs to another target, or is damaged)."""


class DatasetError(StealmlError):
    """An unknown data set, or one whose files cannot be read."""


class GridError(StealmlError):
    """A grid's results store cannot be used, or its Dask cluster cannot be reached."""


class KeyBlocked(QueryBudgetExceeded):
    """The service blocked the client: an extraction monitor flagged it.

    It is a :class:`QueryBudgetExceeded` with nothing left, so an attack stops as it does
    at the end of its budget; ``remaining`` rows of the refused batch (those answered
    before the flag was raised) may still be asked once.
    """

    def __init__(self, requested: int, remaining: int, detector: str, at_query: int) -> None:
        self.detector = detector
        self.at_query = at_query
        super().__init__(requested, remaining, at_query)
        self.args = (f"the service blocked this client: the {detector} monitor flagged it "
                     f"as extracting the model after {at_query} queries",)

    def __str__(self) -> str:
        return str(self.args[0])
