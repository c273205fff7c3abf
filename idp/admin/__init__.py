"""The admin REST API (/admin/api/v1): typed operations on the management layer, their OpenAPI 3.1
document and its reference, generated from the same declarations."""
