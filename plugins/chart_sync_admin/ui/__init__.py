"""The admin pages under ``/chart-sync/ui``: server-rendered HTML, one router per page family."""
