"""The deals dashboard: pages, a JSON API, /metrics and /healthz, served by uvicorn.

    keepa-deals dashboard [--host 127.0.0.1] [--port 8080]

It only reads: the deals database through `connect_readonly` and Redis through the
status code `keepa-deals status` uses. Its one write is the deal query file, from the
admin page. One module per area: `api` (JSON), `pages` (deals, detail, costs,
rejections, export), `health` (/health, /healthz), `metrics`, `admin` (login, /query);
`deals` builds the SQL, `app.create_app` wires them together.

Nothing is imported here: `keepa-deals` loads `cli/dashboard.py` for every command, and
only `keepa-deals dashboard` should pay for FastAPI.
"""
