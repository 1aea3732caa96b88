"""The use cases, one module each, called by the API's routers, the pages and the CLI.

A service takes who acts, what they ask and the process's dependencies (built once by
``chuangzheng.bootstrap``: session factory, Temporal client), and returns a result or raises
a :class:`~chuangzheng.services.errors.ServiceError`. It imports the domain, the read model's
tables and stores, the workflows' contracts and the Temporal client, never ``api``: the HTTP
mapping (statuses, headers, response bodies) stays in ``api``.
"""
