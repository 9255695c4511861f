from kubectl_agentroll.cli import run

run()
