from services.common.service import main

from .service import DEFINITION

main(DEFINITION)
