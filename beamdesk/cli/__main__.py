from beamdesk.cli import main

main()
