from robustmi.cli.main import main

main()
