"""WSGI apps the benchmark runs under gunicorn (rows c, d and e of scripts/bench.py)."""
