// placeholder: container awareness lands here
