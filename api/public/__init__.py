"""Public pages served without login (commitments 公示, ballot casting, the honours list).

Each area has its own router module here; :mod:`api.public.render` holds the one Jinja
environment and the plain base template they share. Nothing here may reveal data that is
not published: every query filters on the published state itself.
"""
