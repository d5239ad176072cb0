"""The ingest stage: the MQTT session (:mod:`.session`), decoding (:mod:`.decode`), shaping into
:mod:`controller.shapes` (:mod:`.prepare`) in worker processes (:mod:`.decode_pool`). It feeds
:mod:`controller.storage`, which never imports it.

Kept empty: decode workers import :mod:`.prepare` without the session's MQTT and SQLAlchemy."""
