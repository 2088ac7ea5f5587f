"""Structure prediction: xTrimoPGLM-Fold (PLM states -> folding trunk -> OpenFold structure module)."""

from xtrimo.structure.config import FoldConfig
from xtrimo.structure.folder import Folder, FoldResult
from xtrimo.structure.model import FoldingHead
from xtrimo.data.pdb import ProteinStructure, StructureReadError, read_structure

__all__ = ["Folder", "FoldConfig", "FoldResult", "FoldingHead", "ProteinStructure", "StructureReadError",
           "read_structure"]
