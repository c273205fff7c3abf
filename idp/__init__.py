"""An OpenID Connect provider that issues tokens only after multi-factor authentication."""
