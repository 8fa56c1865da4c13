"""The admin API's routes beyond health and metrics: SCG's actuator API and the native `/admin/v1`.

Both read the supervisor's current config and store through `ConfigSource`, and change dynamic routes only through
`ConfigSource.change` (validate once, hand out to every worker, store): they hold no state of their own.
"""
