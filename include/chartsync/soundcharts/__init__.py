"""The Soundcharts API: hook (http provider), client, typed models, named errors.

Import the module you need (``soundcharts.client``, ``.errors``, ``.models``): this face stays
empty so that importing an error class does not load the http provider.
"""
