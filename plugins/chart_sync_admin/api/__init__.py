"""The REST API under ``/chart-sync/api/sync``: its routes and their request and response schemas."""
