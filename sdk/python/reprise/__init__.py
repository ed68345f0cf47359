"""Python client of the Reprise HTTP API, for trainers and notebooks.

>>> from reprise import Client
>>> client = Client("http://127.0.0.1:8080")
>>> df = client.snapshot(entity_df, ["ml_user_ratings:plays_all", "ml_item_ratings:likes_all"])
"""

from .client import Client, RepriseError, RetryPolicy

__all__ = ["Client", "RepriseError", "RetryPolicy"]
__version__ = "0.1.0"
