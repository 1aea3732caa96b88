"""The supervision dashboard: server-rendered Chinese pages behind the API's login and scope.

``api.ui.routes.router`` gathers the page routers (``api.ui.routers.*``); ``render`` holds the
Jinja environment, ``session`` the cookie login, ``context`` the round, plan and calendar a
page needs, ``queries`` the read-model queries. Pages read only the read model (and, on the
organisation pages, the workflow's ``status`` query); actions go through the same workflow
Updates as the API (``api.routers.actions.ACTIONS``).
"""
