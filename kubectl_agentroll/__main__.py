from kubectl_agentroll.entry import run

run()
