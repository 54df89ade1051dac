pytest_plugins = ["chaos.fixtures"]
