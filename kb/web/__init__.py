"""The web edge: Litestar app, JSON API, portal pages, widget and admin routes."""
