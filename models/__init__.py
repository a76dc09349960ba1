"""Model builders for the paper's networks (installed as keras_symconv.models).

The builders for the RNA, contact-map and sequential-recommendation networks
live here; each returns a Functional ``keras.Model`` made only of registered
layers, so ``.keras`` files load with ``safe_mode=True``.
"""

__all__: list[str] = []
