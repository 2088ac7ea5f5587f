"""Structure prediction: xTrimoPGLM-Fold (PLM states -> folding trunk -> OpenFold structure module)."""
