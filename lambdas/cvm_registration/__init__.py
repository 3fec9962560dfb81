"""Certificate vending machine (CVM): devices without a certificate register here.

Layout (handler -> logic -> data access, as in aws-lambda-handler-cookbook; every function
of the project has these layers, tests/test_lambda_layering.py):

* `app.py`: the Lambda entry point. Parses and answers HTTP (API Gateway REST proxy events)
  with the Powertools event handler; nothing else.
* `config.py`: the configuration, from the environment model the component declares
  (lambdas/contracts/environment.py).
* `models/`: request models (parser/pydantic) and the response bodies devices read.
* `logic/`: the registration and rotation flows, token and CSR checks; plain functions and
  classes that talk to AWS only through the ports in `dal/ports.py`.
* `dal/`: the boto3 implementations of those ports (DynamoDB, Secrets Manager, IoT).

Packaged on its own (components/packaging.py): imports nothing from the program; the shared
contracts (lambdas/contracts) come with the dependencies layer.
"""
