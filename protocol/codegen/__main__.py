"""python -m tenantry.protocol.codegen [--jar kafka-clients.jar] [--out protocol/messages]"""

from tenantry.protocol.codegen.generate import main

main()
