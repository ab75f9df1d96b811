"""Connect arguments of the test Airflows' SQLite metadata DB (``[database] sql_alchemy_connect_args``).

pysqlite gives up on a lock after 5 s; the api-server creating a backfill's runs while the
dag-processor writes serialized DAGs can wait longer than that on 2 cores. Until the metadata
DB moves to PostgreSQL (issue 11), the test Airflows wait up to 60 s, as a user would set it.
"""

CONNECT_ARGS = {"timeout": 60}
