"""Authentication and authorisation: partner request signing (payment apps and till terminals)."""
