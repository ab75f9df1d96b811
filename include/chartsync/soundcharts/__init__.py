"""soundcharts"""
