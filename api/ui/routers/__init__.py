"""The dashboard's page routers, one per area (gathered by ``api.ui.routes``)."""
