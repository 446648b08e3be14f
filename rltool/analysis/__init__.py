"""Analysis of finished runs: learning curves (`rltool plot`) and summary tables (`rltool report`)."""
