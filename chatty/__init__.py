"""The ``chatty`` command: run the whole stack (``chatty up``), the satellite, and latency reports."""
