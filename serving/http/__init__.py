"""The HTTP API: routes, request and response schemas, middleware, the fast lane for /v1/predict."""
