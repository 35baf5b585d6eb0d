"""``mnist-compare``: Keras vs Lightning seed by seed (``cli``, ``runners``), the report
(``report``, ``sections``, ``stats``, ``markdown``, ``plots``) and the speed benchmark (``bench``).
Nothing else in the package imports it.
"""
