# The raytag cluster image: the Ray GPU image raytag pins, plus raytag installed from this
# repository with every dependency at an exact version (cluster/image/constraints.txt).
#   docker build -t REGISTRY/raytag:0.2.0 . && docker push REGISTRY/raytag:0.2.0
# then set that name in cluster/aws.yaml (docker.image) and cluster/kuberay/*.yaml (image).
FROM rayproject/ray:2.60.0-py311-gpu

COPY --chown=ray:users . /home/ray/raytag
RUN pip install --no-cache-dir -c /home/ray/raytag/cluster/image/constraints.txt \
        "/home/ray/raytag[jpeg]" \
    && python -c "import raytag, ray; assert ray.__version__ == '2.60.0', ray.__version__"
