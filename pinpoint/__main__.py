from pinpoint.cli import main

main()
