"""What Shorty does for a caller, once, whatever asks: the API's handlers parse a
request, call a use case here, and render what it returns."""
