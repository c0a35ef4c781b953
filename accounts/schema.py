"""How the API's authentication appears in the OpenAPI schema."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class DefaultUserAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.DefaultUserAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Any value is accepted in keyless mode.",
        }
