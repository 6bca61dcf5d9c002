# Sourced: pick the data root when ALKD_DATA is not set.
# ./data if it holds the release, else ../shared/data/alkdrec (CI, this
# project's workspace), else ./data (where `alkd fetch-data` puts them).
if [ -z "${ALKD_DATA:-}" ]; then
  if [ -d data/ML ]; then
    export ALKD_DATA=data
  elif [ -d ../shared/data/alkdrec/ML ]; then
    ALKD_DATA=$(cd ../shared/data/alkdrec && pwd)
    export ALKD_DATA
  else
    export ALKD_DATA=data
  fi
fi
