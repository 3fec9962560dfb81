"""What policy documents mean, judged independently of how they are spelled.

Plain functions over plain data (dicts, lists, strings, numbers); the guardrails in
`policy.guardrails` read the engine's props and hand the parts they need to these. Nothing
here swallows `pulumi_policy`'s UnknownValueError: a value unknown at preview must stop the
guardrail (the engine then reports it as "can't run during preview"), never pass it.
"""
